"""inti_export.models"""
