"""Checks that BUILD describes the Python tree: targets, files and deps.

Bazel cannot fetch its rules offline here, so this check stands in for
`bazel build //...`: every module, test and entry point has a target, every
listed file exists, and every intra-project import is a declared dependency.
"""

import ast
import os

RULES = ('py_library', 'py_test', 'py_binary')
PACKAGES = ('fedmeta', 'experiments', 'tests')


def parse_build(path: str) -> dict[str, dict]:
  """Returns {target name: {'rule', 'srcs', 'deps'}} from a BUILD file."""
  with open(path) as f:
    tree = ast.parse(f.read(), filename=path)
  targets = {}
  for node in tree.body:
    if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
      continue
    call = node.value
    rule = getattr(call.func, 'id', None)
    if rule not in RULES:
      continue
    kwargs = {k.arg: k.value for k in call.keywords}
    name = ast.literal_eval(kwargs['name'])
    deps = []
    for dep in getattr(kwargs.get('deps'), 'elts', []):
      if isinstance(dep, ast.Constant):
        deps.append(dep.value)  # Third-party deps are requirement(...) calls.
    if name in targets:
      raise ValueError(f'{path}: target {name} defined twice')
    targets[name] = {
        'rule': rule,
        'srcs': ast.literal_eval(kwargs.get('srcs', ast.List(elts=[]))),
        'deps': deps,
    }
  return targets


def python_files(root: str) -> list[str]:
  found = []
  for package in PACKAGES:
    for dirpath, dirnames, filenames in os.walk(os.path.join(root, package)):
      dirnames[:] = [d for d in dirnames if d != '__pycache__']
      found += [os.path.relpath(os.path.join(dirpath, f), root)
                for f in filenames if f.endswith('.py')]
  return sorted(found)


def _module_file(root: str, module: str):
  """The file defining dotted `module`, or None if it is not in the tree."""
  base = os.path.join(*module.split('.'))
  for candidate in (base + '.py', os.path.join(base, '__init__.py')):
    if os.path.isfile(os.path.join(root, candidate)):
      return candidate
  return None


def project_imports(root: str, src: str) -> set[str]:
  """Files of the project that `src` imports."""
  with open(os.path.join(root, src)) as f:
    tree = ast.parse(f.read(), filename=src)
  files = set()

  def add(module):
    if module.split('.')[0] in PACKAGES:
      path = _module_file(root, module)
      if path:
        files.add(path)
      return path is not None
    return False

  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        add(alias.name)
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      # `from pkg import mod` needs mod; `from pkg import name` needs pkg.
      # (As in Bazel, a package's __init__ is not a dependency of the modules
      # imported through it: that would make every re-exporting package a
      # cycle.)
      for alias in node.names:
        if not add(f'{node.module}.{alias.name}'):
          add(node.module)
  return files


def check(root: str) -> list[str]:
  """Returns one line per inconsistency between BUILD and the tree."""
  problems = []
  targets = parse_build(os.path.join(root, 'BUILD'))
  owner = {}
  for name, target in targets.items():
    for src in target['srcs']:
      if not os.path.isfile(os.path.join(root, src)):
        problems.append(f'BUILD: {name} lists missing file {src}')
      if src in owner:
        problems.append(f'BUILD: {src} is in both {owner[src]} and {name}')
      owner[src] = name
    for dep in target['deps']:
      if dep.startswith(':') and dep[1:] not in targets:
        problems.append(f'BUILD: {name} depends on unknown target {dep}')
  for path in python_files(root):
    if path not in owner:
      problems.append(f'BUILD: no target lists {path}')
    elif (path.endswith('_test.py') and
          targets[owner[path]]['rule'] != 'py_test'):
      problems.append(f'BUILD: {path} is a test but {owner[path]} is not a '
                      'py_test')
  for name, target in targets.items():
    for src in target['srcs']:
      if not os.path.isfile(os.path.join(root, src)):
        continue
      for imported in sorted(project_imports(root, src)):
        dep = owner.get(imported)
        if dep and dep != name and f':{dep}' not in target['deps']:
          problems.append(f'BUILD: {name} imports {imported} but does not '
                          f'depend on :{dep}')
  return problems
