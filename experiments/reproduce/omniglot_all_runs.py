"""Old name of fedmeta.experiments.reproduce.omniglot_all_runs.

See experiments/__init__.py.
"""
import experiments
experiments.forward(__spec__.name, __name__ == '__main__')
