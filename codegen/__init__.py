"""celgate.codegen"""
