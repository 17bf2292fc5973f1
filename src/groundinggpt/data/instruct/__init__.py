"""GPT-generated training data (paper §3.2.2-3.2.3): question pools and the instruction
data of Figures 4-6, through any OpenAI-compatible endpoint."""
