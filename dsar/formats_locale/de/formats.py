# "7. Dezember 2026, 14:05"; short, "7. Dez. 2026" (N: the month abbreviated as German writes it, "Juni" whole).
DATE_FORMAT = "j. F Y"
DATETIME_FORMAT = "j. F Y, H:i"
SHORT_DATE_FORMAT = "j. N Y"
SHORT_DATETIME_FORMAT = "j. N Y, H:i"
