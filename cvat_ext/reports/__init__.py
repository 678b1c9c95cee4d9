"""Report pages for managers, served by the sidecar behind CVAT sign-in (:mod:`cvat_ext.reports.pages`)."""
