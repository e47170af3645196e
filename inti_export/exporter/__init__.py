"""inti_export.exporter"""
