"""The ANS CI-SIS conformance pack: loading, checking, compiling and running its layers."""
