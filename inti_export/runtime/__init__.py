"""inti_export.runtime"""
