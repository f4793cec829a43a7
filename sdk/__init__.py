"""celgate.sdk"""
