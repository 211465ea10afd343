"""`python -m bench`: run the benchmarks."""

from bench.cli import main

raise SystemExit(main())
