"""Ops reports: the figures of a time window, computed by the database (`compute`), as a
typed `Report` (`figures`), and the chart that draws them (`chart`, matplotlib, lazily)."""
