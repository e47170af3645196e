"""inti_export.tools"""
