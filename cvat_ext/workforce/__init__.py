"""The people side of QA: annotators' work records, gold qualification and scorecards."""
