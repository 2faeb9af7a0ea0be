"""Helpers of the medseg Streamlit app: rendering (pure numpy + PIL), session state, engine calls.

Everything that touches images beyond display (reading, segmenting, scoring) is the engine's
(:mod:`medseg`); these modules only arrange its results for the page.
"""
