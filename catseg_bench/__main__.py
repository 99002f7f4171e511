"""`python -m catseg_bench ...`: the same CLI as `bench`, the entry point `torchrun` needs."""

from catseg_bench.cli import main

if __name__ == "__main__":
    main()
