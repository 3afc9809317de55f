"""Old name of fedmeta.experiments.benchmarks.pfedhn_benchmark.

See experiments/__init__.py.
"""
import experiments
experiments.forward(__spec__.name, __name__ == '__main__')
