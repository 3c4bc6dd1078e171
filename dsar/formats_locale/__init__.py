"""Each language's way of writing dates, for Django's `date` filter and `formats.date_format`
(settings.FORMAT_MODULE_PATH): the day before the month, the month in words, in every language."""
