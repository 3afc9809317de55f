"""Old name of fedmeta.experiments.training_loop.

See experiments/__init__.py.
"""
import experiments
experiments.forward(__spec__.name, __name__ == '__main__')
