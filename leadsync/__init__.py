"""The application shell: CLI, config loading, wiring, the demo and the offline commands' file handling;
may import every other package, and nothing imports it."""
