"""Old name of fedmeta.experiments.benchmarks.aggregation_benchmark.

See experiments/__init__.py.
"""
import experiments
experiments.forward(__spec__.name, __name__ == '__main__')
