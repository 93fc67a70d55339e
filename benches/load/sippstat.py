#!/usr/bin/env python3
"""Prints the last line of a SIPp statistics file (-trace_stat) as
"N ok, M failed of T". Usage: sippstat.py STAT.csv"""
import csv
import sys

rows = list(csv.reader(open(sys.argv[1]), delimiter=";"))
if len(rows) < 2:
    sys.exit(f"{sys.argv[1]}: no statistics")
head, last = rows[0], rows[-1]


def get(k):
    return last[head.index(k)] if k in head else "?"


print(f"{sys.argv[1]}: {get('SuccessfulCall(C)')} ok, {get('FailedCall(C)')} failed of "
      f"{get('TotalCallCreated')}")
