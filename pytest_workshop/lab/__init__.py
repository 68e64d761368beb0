"""The embedded reference lab: real Docker and etcd processes on this machine, and their control layer.

``EmbeddedLab`` starts and stops them; ``LabControl``/``MemberControl`` (in ``control``) is
the interface fault scenarios use to stop, start, pause and partition one member.
"""

from pytest_workshop.lab.control import LabControl, MemberControl
from pytest_workshop.lab.embedded import DEFAULT_STATE_DIR, EmbeddedLab
from pytest_workshop.lab.settings import LabSettings

__all__ = ["DEFAULT_STATE_DIR", "EmbeddedLab", "LabControl", "LabSettings", "MemberControl"]
