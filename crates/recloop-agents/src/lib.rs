//! Brainstorm, Develop, Evaluate and Evolve, and the orchestrator of the loop.
