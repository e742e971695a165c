"""English dates and times as the studio's pages write them: 24-hour, month names short.

Only what differs from Django's English locale is here; everything else (the input
formats, the numbers) still comes from it.
"""

DATE_FORMAT = "M j, Y"  # Mar 3, 2026
TIME_FORMAT = "H:i"  # 14:05
DATETIME_FORMAT = "M j, Y H:i"  # Mar 3, 2026 14:05
SHORT_DATE_FORMAT = "Y-m-d"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
