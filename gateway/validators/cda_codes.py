"""National value sets the built-in CDA header rules check against, by code system.

Transcribed from the CI-SIS value sets (IHE SVS files published by the ANS, JDV_J0x_Xds…) so
that the built-in tier judges document type, facility type and practice setting on a machine
without the conformance pack. When a pack is configured it checks the same codes against its own
(possibly newer) copies; these lists only need updating when the ANS publishes new codes.
"""

# JDV_J07_XdsTypeCode_CISIS (1.2.250.1.213.1.1.5.471), version of 20240927:
# document types
TYPE_CODES: dict[str, frozenset[str]] = {
    "1.2.250.1.213.1.1.4.12": frozenset(
        {
            "ATTEST-ASS-COMPL",
            "ATTEST-RESID",
            "ATTEST-HEBGT",
            "ATTEST-DROITS-AM",
            "AUTORIS-SOINS",
            "BIL_AUTO",
            "CERT_DECL",
            "DISP_AUT",
            "EXPPAT_1",
            "EXPPAT_2",
            "EXPPAT_3",
            "IMG-KOS",
            "PROT_ALD",
            "REMB",
            "SYNTH",
            "DOCPAT01",
            "DOCPAT02",
            "DOCPAT03",
            "DOCPAT04",
            "DOCPAT05",
            "DOCPAT06",
            "DOCPAT07",
            "DOCPAT08",
            "DOCPAT09",
            "PIECE-IDENTITE",
            "PRESC-AAT",
            "PRESC-BIO",
            "PRESC-KINE",
            "PRESC-INF",
            "PRESC-PEDI",
            "PRESC-ORTHOPHO",
            "PRESC-ORTHOPTIE",
            "FEUILLE-DE-STYLE",
            "FICHE-CONTACTS",
            "EXPORT_DUI",
        }
    ),
    "2.16.840.1.113883.6.1": frozenset(
        {
            "11369-6",
            "11488-4",
            "11490-0",
            "34112-3",
            "11502-2",
            "11505-5",
            "11506-3",
            "15507-7",
            "15508-5",
            "18776-5",
            "18748-4",
            "18761-7",
            "28617-9",
            "28653-4",
            "29274-8",
            "34120-6",
            "34133-9",
            "34749-2",
            "34794-8",
            "34842-5",
            "34874-8",
            "34875-5",
            "47420-5",
            "51851-4",
            "51969-4",
            "52040-3",
            "55115-0",
            "56445-0",
            "56446-8",
            "57828-6",
            "57832-8",
            "57833-6",
            "59283-2",
            "59284-0",
            "60280-5",
            "60568-3",
            "60591-5",
            "60593-1",
            "61357-0",
            "67851-6",
            "68599-0",
            "68817-6",
            "70004-7",
            "78341-5",
            "74207-2",
            "74465-6",
            "75468-9",
            "75482-0",
            "75492-9",
            "75496-0",
            "77436-4",
            "77604-7",
            "78513-9",
            "78601-2",
            "80565-5",
            "80771-9",
            "80788-3",
            "80820-4",
            "83836-7",
            "83869-8",
            "83901-9",
            "83981-1",
            "85208-7",
            "86531-1",
            "87273-9",
            "88348-8",
            "89601-9",
            "93024-8",
            "96349-6",
            "96874-3",
            "96173-0",
            "57055-6",
            "57057-2",
            "57075-4",
            "89235-6",
            "78489-2",
            "89233-1",
            "101881-1",
        }
    ),
    "ASTM": frozenset(
        {
            "E1762",
        }
    ),
}

# JDV_J02_XdsHealthcareFacilityTypeCode_CISIS (1.2.250.1.213.1.1.5.466), version of 20241213:
# healthcare facility types
FACILITY_TYPE_CODES: dict[str, frozenset[str]] = {
    "1.2.250.1.213.1.1.4.6": frozenset(
        {
            "EXP_PATIENT",
            "SNR",
        }
    ),
    "1.2.250.1.71.4.2.4": frozenset(
        {
            "SA01",
            "SA02",
            "SA03",
            "SA04",
            "SA05",
            "SA06",
            "SA07",
            "SA08",
            "SA09",
            "SA10",
            "SA12",
            "SA13",
            "SA14",
            "SA15",
            "SA16",
            "SA17",
            "SA18",
            "SA19",
            "SA20",
            "SA21",
            "SA22",
            "SA23",
            "SA24",
            "SA25",
            "SA26",
            "SA27",
            "SA28",
            "SA29",
            "SA30",
            "SA31",
            "SA32",
            "SA33",
            "SA34",
            "SA35",
            "SA36",
            "SA37",
            "SA38",
            "SA39",
            "SA40",
            "SA41",
            "SA42",
            "SA43",
            "SA44",
            "SA45",
            "SA46",
            "SA47",
            "SA48",
            "SA49",
            "SA50",
            "SA51",
            "SA52",
            "SA53",
            "SA54",
            "SA55",
            "SA56",
            "SA57",
            "SA58",
            "SA59",
            "SA60",
            "SA61",
            "SA63",
            "SA64",
            "SA65",
            "SA66",
            "SA67",
            "SA68",
            "SA69",
        }
    ),
}

# JDV_J04_XdsPracticeSettingCode_CISIS (1.2.250.1.213.1.1.5.467), version of 20240927:
# practice settings
PRACTICE_SETTING_CODES: dict[str, frozenset[str]] = {
    "1.2.250.1.213.1.1.4.6": frozenset(
        {
            "EXP_PATIENT",
            "SNR",
        }
    ),
    "1.2.250.1.213.1.1.4.9": frozenset(
        {
            "AMBULATOIRE",
            "AMO",
            "DEPISTAGE",
            "ESSMS",
            "ETABLISSEMENT",
            "HAD",
            "MAD",
            "PALLIATIF",
            "SAD",
            "SAMU_SMUR",
        }
    ),
}

# JDV_J08_XdsConfidentialityCode_CISIS (1.2.250.1.213.1.1.5.463), version of 20200424:
# confidentiality and masking
CONFIDENTIALITY_CODES: dict[str, frozenset[str]] = {
    "2.16.840.1.113883.5.25": frozenset(
        {
            "N",
            "R",
            "V",
        }
    ),
    "1.2.250.1.213.1.1.4.13": frozenset(
        {
            "INVISIBLE_PATIENT",
            "INVISIBLE_REPRESENTANTS_LEGAUX",
            "MASQUE_PS",
        }
    ),
}
