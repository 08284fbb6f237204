"""The pack's files are read without expanding what they declare (gateway.conformance.pack_xml):
a pack unpacked from elsewhere cannot make the gateway read other files into a stylesheet."""

from gateway.conformance import pack_xml

DECLARING = """<?xml version="1.0"?>
<!DOCTYPE schema [<!ENTITY secret SYSTEM "{target}">]>
<schema><title>&secret;</title></schema>
"""


def test_an_external_entity_in_a_pack_file_is_not_read(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the stylesheet")
    path = tmp_path / "layer.sch"
    path.write_text(DECLARING.format(target=secret.as_uri()))

    from_file = pack_xml.parse(path).getroot()
    from_text = pack_xml.from_text(path.read_text(), huge_tree=True)

    for root in (from_file, from_text):
        assert "not for the stylesheet" not in "".join(root.itertext())
        assert root.findtext("title") in ("", None)
