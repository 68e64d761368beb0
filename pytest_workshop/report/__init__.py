"""Reports: Allure labels and evidence, secret redaction, summary.json, the offline HTML report.

Plain Python (no pytest): the plugin feeds it, `workshop report` drives the HTML part.
"""
