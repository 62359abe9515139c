"""Zero-cost proxies: scores of an untrained candidate from one label-free batch (``PROXIES``).

Importing this package registers every proxy (``unnas.registry.load_all`` imports its modules):
``synflow``, ``naswot``, ``jacob_cov``, ``swap``, ``swap_reg``, ``zico``, ``grad_norm``, ``snip``,
``grasp``, ``fisher``, ``params``, ``flops``, ``meco``, ``zen``, AZ-NAS's ``az_expressivity``,
``az_progressivity``, ``az_trainability`` and VKDNW's ``vkdnw``, ``vkdnw_single``.
The contract is in :mod:`unnas.eval.proxies.base`.
"""

from unnas.eval.proxies.base import NonFiniteProxy, ProxyInput, check_options, compute_proxy, images_needed, scaled

__all__ = ["NonFiniteProxy", "ProxyInput", "check_options", "compute_proxy", "images_needed", "scaled"]
