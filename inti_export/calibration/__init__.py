"""inti_export.calibration"""
