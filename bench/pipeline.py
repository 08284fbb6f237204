"""The pure pipeline on the repository's own fixtures (no broker, no database)."""

from __future__ import annotations

from bench.common import FIXTURES, ROOT, Context, measure
from gateway.adapters.cda.parser import parse as parse_cda
from gateway.adapters.hl7v2.parser import parse as parse_hl7
from gateway.pipeline import Tools, ingest, read
from gateway.routing import loader
from gateway.signing.keystore import CERT_FILE, KEY_FILE, load_pem
from gateway.signing.xades import XadesSigner
from gateway.submission import Submission


def rows(ctx: Context) -> dict[str, dict]:
    tools = Tools(
        signer=XadesSigner(load_pem(ctx.keys_dir / KEY_FILE, ctx.keys_dir / CERT_FILE)),
        routing=loader.load(ROOT / "routing.yaml"),
    )
    cda = (FIXTURES / "cda/crbio_glycemia.xml").read_bytes()
    oru = (FIXTURES / "hl7v2/oru_r01_lab_results.hl7").read_bytes()
    sub_cda = Submission(raw=cda, transport="bench")
    sub_oru = Submission(raw=oru, transport="bench")
    return {
        f"CDA parse ({len(cda) // 1024} KB fixture)": measure(lambda: parse_cda(cda)),
        "CDA parse+validate": measure(lambda: read(sub_cda, tools.checks)),
        "CDA full pipeline (sign incl.)": measure(lambda: ingest(sub_cda, tools)),
        f"HL7v2 tokenize ({len(oru)} B fixture)": measure(lambda: parse_hl7(oru)),
        "HL7v2 full pipeline": measure(lambda: ingest(sub_oru, tools)),
    }
