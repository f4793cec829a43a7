"""celgate.policies"""
