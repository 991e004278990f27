"""mgdiary: patient symptom diaries for clinical trials in refractory myasthenia gravis."""

__version__ = "0.1.0"
