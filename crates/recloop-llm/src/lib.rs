//! Language-model providers, tools, structured output, budgets and record/replay.
