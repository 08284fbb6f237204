"""HL7v2: MLLP framing, parsing, acknowledgements, and the CDA-over-HL7v2 transport."""
