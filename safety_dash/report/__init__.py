"""The safety review committee pack of a data cut (DOMAIN.md §6): PDF or HTML, made from the cut's stored
derivations with the functions the dashboard and the ``rates`` and ``signals`` commands use.

:func:`make_committee_pack` writes the file (the ``report`` command); :func:`make_committee_pack_download` returns
the PDF of the dashboard's current study, cut and filters for its "Committee pack" button.
"""

from safety_dash.report.build import make_committee_pack, make_committee_pack_download
from safety_dash.report.inputs import PackFilters

__all__ = ["PackFilters", "make_committee_pack", "make_committee_pack_download"]
