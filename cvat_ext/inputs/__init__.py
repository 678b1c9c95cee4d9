"""Input files checked against each other before any work: the offline commands' guard.

The readers (:mod:`cvat_ext.annotations.cvat_json`, the rules loader, the active-learning sources)
check each file alone. This package checks what only the files together can tell:

* :mod:`.kinds`: the file is the kind the option asks for (labels are not annotations, a rule
  pack is not findings), sniffed from its first keys without reading it all;
* :mod:`.columns`: the ids of an annotation file as numpy columns (frame, label, attribute spec),
  each row knowing where it sits in the file (``shapes[12].elements[3]``);
* :mod:`.crosscheck`: those columns against the job's frame meta and the labels, vectorised, with
  a slow path only to name the first bad object;
* :mod:`.files`: the labels and meta readers of the CLI, kind-checked;
* :mod:`.text`: the one wording for a file that is not UTF-8.

Every problem raises :class:`~cvat_ext.errors.InputMismatchError` naming the file(s) and the
object, which the CLI prints as one line with exit code 2. Submodules are imported explicitly
(this package imports nothing), so the readers can use :mod:`.text` without a cycle.
"""
