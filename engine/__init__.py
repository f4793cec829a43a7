"""celgate.engine"""
