"""Apprentice: ROS 2-native robot learning (teleop → record → LeRobotDataset v3.0 → train → deploy)."""

from __future__ import annotations

import pkgutil

# The colcon build installs the generated interfaces (apprentice.msg, apprentice.srv) into its own
# site-packages/apprentice; an editable pip install serves the rest from src/. Extending __path__
# lets one `import apprentice` see both halves, whichever comes first on sys.path.
__path__ = pkgutil.extend_path(__path__, __name__)

__version__ = "0.1.0"
