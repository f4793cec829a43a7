"""celgate.conformance"""
