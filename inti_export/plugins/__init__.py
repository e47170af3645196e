"""inti_export.plugins"""
