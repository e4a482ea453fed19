"""The base of the add-on's sidebar panels."""


class SidebarPanel:
    """Where the add-on's panels live: the 3D Viewport's sidebar (N), tab "Stylize"."""

    bl_space_type = 'VIEW_3D'
    bl_region_type = 'UI'
    bl_category = "Stylize"
