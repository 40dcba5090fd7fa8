"""Benchmarks that print measured numbers; not part of the engine (core/).

    python -m benchmarks verdict [--model KEY]... [--repeats N] [--clips 6,60]
    python -m benchmarks batch [--limit N] [--model KEY]... [--workers 1,2]
    python -m benchmarks explain [--models K,...] [--methods M,...] [--exact S] ...
    python -m benchmarks store [--analyses N] [--repeats N] [--seconds S] ...
    python -m benchmarks shapley [--split dev|eval] ...
    python -m benchmarks load [--sessions 8] [--duration 60] [--cold-only]
    python -m benchmarks aasist [--model aasist] [--batch 1,8] [--threads N]
    python -m benchmarks uploads [--clients 10] [--puts 20] [--mb 40] [--login N] [--baseline N]

One module per benchmark (verdict, batch, explain, store), each with ``main(argv)``;
every one goes through ``core.engine.service.Engine``, as the pages and the CLI do.
"""
