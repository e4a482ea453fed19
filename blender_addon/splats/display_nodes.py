"""Display of a splat object: a Geometry Nodes modifier, built from Python, in one of two kinds.

Native (Blender 5.3+, where Gaussian splat point clouds exist): the mesh's points become a point cloud of type
GAUSSIAN_SPLAT (*Mesh to Points*, *Set Point Cloud Type*) carrying the radiance, scale and rotation
attributes the mesh holds (objects.py derives them from the raw values), so EEVEE and Cycles draw and render
the splats themselves, composited with the rest of the scene. There is no material: one would replace the
splats' colour.

Ellipsoids or points (every Blender; the only kind before 5.3): each shown Gaussian becomes an icosphere
instance scaled by `scale` x Size (Size 2 draws the 2-sigma ellipsoid) and turned by `rotation`, or in points
mode a point of radius mean(scale) x Size. Every Nth
Gaussian is shown, with N raised so at most Max Splats appear, which keeps million-splat scenes interactive.
The materials read the DC colour and opacity from the `color` attribute (an instance attribute for
ellipsoids; copied to `splat_color` on points) and draw it unlit, with the opacity as alpha (dithered in
EEVEE) on front faces only. Only node types and the `interface.new_socket` API present in Blender 4.2
through 5.x are used.
"""

from __future__ import annotations

import bpy

from .native_objects import SET_TYPE_NODE

GROUP_NAME = "Gaussian Splat Display"
GROUP_VERSION = 1
MODIFIER_NAME = "Gaussian Splat Display"
ELLIPSOID_MATERIAL = "Gaussian Splat Ellipsoid"
POINT_MATERIAL = "Gaussian Splat Point"
VERSION_KEY = "gaussian_splat_display_version"
MATERIAL_KEY = "gaussian_splat_material"
DISPLAY_INPUTS = {
    "Points Only": ('NodeSocketBool', False),
    "Every Nth": ('NodeSocketInt', 1),
    "Max Splats": ('NodeSocketInt', 200_000),
    "Size": ('NodeSocketFloat', 2.0),
}
NATIVE_GROUP_NAME = "Gaussian Splat Native Display"
NATIVE_VERSION_KEY = "gaussian_splat_native_display_version"
NATIVE_GROUP_VERSION = 1
SPLAT_TYPE_ITEM = "3D Gaussian Splat"  # the Set Point Cloud Type node's menu item for GAUSSIAN_SPLAT (5.3)
POINT_COLOR_ATTRIBUTE = "splat_color"  # Cycles does not read a point-cloud attribute named "color" (5.0)
SRGB_GAMMA = 2.2  # 3DGS colours are display-referred sRGB; the material decodes them to scene-linear


def add_display_modifier(obj: bpy.types.Object, points_only: bool, max_splats: int,
                         size: float) -> bpy.types.Modifier:
    """Add the display modifier to a splat object, with its inputs set."""
    modifier = obj.modifiers.new(MODIFIER_NAME, 'NODES')
    modifier.node_group = display_group()
    for name, value in (("Points Only", points_only), ("Max Splats", max_splats), ("Size", size)):
        set_display_input(modifier, name, value)
    return modifier


def add_native_display_modifier(obj: bpy.types.Object) -> bpy.types.Modifier:
    """Show a splat object as Blender's own Gaussian splats (needs native_splats_supported())."""
    modifier = obj.modifiers.new(MODIFIER_NAME, 'NODES')
    modifier.node_group = native_display_group()
    return modifier


def is_native_display(modifier: bpy.types.Modifier | None) -> bool:
    """True for a display modifier that shows native splats."""
    group = modifier.node_group if modifier is not None else None
    return group is not None and NATIVE_VERSION_KEY in group.keys()


def display_modifier(obj: bpy.types.Object) -> bpy.types.Modifier | None:
    """The object's display modifier, if it has one."""
    modifier = obj.modifiers.get(MODIFIER_NAME)
    return modifier if modifier is not None and modifier.type == 'NODES' else None


def display_input_names(modifier: bpy.types.Modifier) -> list[str]:
    """The inputs a user sets on a display modifier (none for native splats), in the group's order."""
    return [item.name for item in modifier.node_group.interface.items_tree
            if item.item_type == 'SOCKET' and item.in_out == 'INPUT' and item.socket_type != 'NodeSocketGeometry']


def input_identifier(modifier: bpy.types.Modifier, name: str) -> str:
    """The modifier key of a group input (modifiers store inputs by socket identifier, e.g. Socket_2)."""
    return next(item.identifier for item in modifier.node_group.interface.items_tree
                if item.item_type == 'SOCKET' and item.in_out == 'INPUT' and item.name == name)


def input_property(modifier: bpy.types.Modifier, name: str) -> tuple[bpy.types.bpy_struct, str]:
    """(owner, RNA path) of a group input's value, for layout.prop and path_resolve. Blender 5.2 moved the
    values from the modifier's ID properties (["Socket_2"]) to modifier.properties.inputs.Socket_2.value."""
    identifier = input_identifier(modifier, name)
    if hasattr(modifier, "properties"):
        return getattr(modifier.properties.inputs, identifier), "value"
    return modifier, f'["{identifier}"]'


def get_display_input(modifier: bpy.types.Modifier, name: str) -> bool | int | float:
    """One display input's value, on every supported Blender (see input_property)."""
    owner, path = input_property(modifier, name)
    return owner.path_resolve(path)


def set_display_input(modifier: bpy.types.Modifier, name: str, value: bool | int | float) -> None:
    """Set one display input (Points Only, Every Nth, Max Splats, Size) and refresh the object."""
    owner, path = input_property(modifier, name)
    if path == "value":
        owner.value = value
    else:
        modifier[input_identifier(modifier, name)] = value
    modifier.id_data.update_tag()


def display_group() -> bpy.types.NodeTree:
    """The shared display node group: reused when this add-on version built it, else built anew."""
    group = next((g for g in bpy.data.node_groups if g.get(VERSION_KEY) == GROUP_VERSION), None)
    if group is not None:
        return group
    group = bpy.data.node_groups.new(GROUP_NAME, 'GeometryNodeTree')
    group[VERSION_KEY] = GROUP_VERSION
    build_display_group(group)
    arrange_nodes(group)
    return group


def native_display_group() -> bpy.types.NodeTree:
    """The shared native display group: the mesh's points as a GAUSSIAN_SPLAT point cloud (all attributes kept)."""
    group = next((g for g in bpy.data.node_groups if g.get(NATIVE_VERSION_KEY) == NATIVE_GROUP_VERSION), None)
    if group is not None:
        return group
    group = bpy.data.node_groups.new(NATIVE_GROUP_NAME, 'GeometryNodeTree')
    group[NATIVE_VERSION_KEY] = NATIVE_GROUP_VERSION
    group.interface.new_socket("Geometry", in_out='INPUT', socket_type='NodeSocketGeometry')
    group.interface.new_socket("Geometry", in_out='OUTPUT', socket_type='NodeSocketGeometry')
    inputs = group.nodes.new('NodeGroupInput')
    points = group.nodes.new('GeometryNodeMeshToPoints')
    splats = group.nodes.new(SET_TYPE_NODE)
    splats.inputs["Type"].default_value = SPLAT_TYPE_ITEM
    output = group.nodes.new('NodeGroupOutput')
    link(group, inputs.outputs["Geometry"], points.inputs["Mesh"])
    link(group, points.outputs["Points"], splats.inputs["Points"])
    link(group, splats.outputs["Points"], output.inputs[0])
    arrange_nodes(group)
    return group


def build_display_group(tree: bpy.types.NodeTree) -> None:
    """Nodes: stride selection, ellipsoid instances or points, materials, switch."""
    tree.interface.new_socket("Geometry", in_out='INPUT', socket_type='NodeSocketGeometry')
    tree.interface.new_socket("Geometry", in_out='OUTPUT', socket_type='NodeSocketGeometry')
    for name, (socket_type, default) in DISPLAY_INPUTS.items():
        socket = tree.interface.new_socket(name, in_out='INPUT', socket_type=socket_type)
        socket.default_value = default
        if socket_type == 'NodeSocketInt':
            socket.min_value = 1 if name == "Every Nth" else 0
        elif socket_type == 'NodeSocketFloat':
            socket.min_value = 0.0
    inputs = tree.nodes.new('NodeGroupInput')
    output = tree.nodes.new('NodeGroupOutput')
    selection = stride_selection(tree, inputs)
    scale = named_attribute(tree, "scale", 'FLOAT_VECTOR')
    ellipsoids = ellipsoid_instances(tree, inputs, selection, scale)
    points = splat_points(tree, inputs, selection, scale)
    switch = tree.nodes.new('GeometryNodeSwitch')
    switch.input_type = 'GEOMETRY'
    link(tree, inputs.outputs["Points Only"], switch.inputs["Switch"])
    link(tree, ellipsoids, switch.inputs["False"])
    link(tree, points, switch.inputs["True"])
    link(tree, switch.outputs["Output"], output.inputs[0])


def link(tree: bpy.types.NodeTree, from_socket: bpy.types.NodeSocket, to_socket: bpy.types.NodeSocket) -> None:
    """Connect two sockets."""
    tree.links.new(from_socket, to_socket)


def math(tree: bpy.types.NodeTree, operation: str, a: bpy.types.NodeSocket | float,
         b: bpy.types.NodeSocket | float | None = None) -> bpy.types.NodeSocket:
    """A float Math node (geometry or shader tree); a and b are sockets or constants. Returns its output."""
    node = tree.nodes.new('ShaderNodeMath')
    node.operation = operation
    for index, value in ((0, a), (1, b)):
        if isinstance(value, bpy.types.NodeSocket):
            link(tree, value, node.inputs[index])
        elif value is not None:
            node.inputs[index].default_value = value
    return node.outputs[0]


def stride_selection(tree: bpy.types.NodeTree, inputs: bpy.types.Node) -> bpy.types.NodeSocket:
    """True on every stride-th point, stride = max(Every Nth, ceil(point count / Max Splats))."""
    size = tree.nodes.new('GeometryNodeAttributeDomainSize')
    size.component = 'MESH'
    link(tree, inputs.outputs["Geometry"], size.inputs["Geometry"])
    per_cap = math(tree, 'CEIL', math(tree, 'DIVIDE', size.outputs["Point Count"], inputs.outputs["Max Splats"]))
    stride = math(tree, 'MAXIMUM', inputs.outputs["Every Nth"], per_cap)
    index = tree.nodes.new('GeometryNodeInputIndex')
    remainder = math(tree, 'MODULO', index.outputs["Index"], stride)
    compare = tree.nodes.new('FunctionNodeCompare')
    compare.data_type = 'FLOAT'
    compare.operation = 'LESS_THAN'
    link(tree, remainder, compare.inputs[0])
    compare.inputs[1].default_value = 0.5
    return compare.outputs["Result"]


def named_attribute(tree: bpy.types.NodeTree, name: str, data_type: str) -> bpy.types.NodeSocket:
    """The output of a Named Attribute node reading name."""
    node = tree.nodes.new('GeometryNodeInputNamedAttribute')
    node.data_type = data_type
    node.inputs["Name"].default_value = name
    return node.outputs["Attribute"]


def ellipsoid_instances(tree: bpy.types.NodeTree, inputs: bpy.types.Node, selection: bpy.types.NodeSocket,
                        scale: bpy.types.NodeSocket) -> bpy.types.NodeSocket:
    """Icosphere instances on the selected points, scaled by scale x Size and rotated by rotation."""
    sphere = tree.nodes.new('GeometryNodeMeshIcoSphere')
    sphere.inputs["Radius"].default_value = 1.0
    sphere.inputs["Subdivisions"].default_value = 1
    sized = tree.nodes.new('ShaderNodeVectorMath')
    sized.operation = 'SCALE'
    link(tree, scale, sized.inputs[0])
    link(tree, inputs.outputs["Size"], sized.inputs["Scale"])
    instances = tree.nodes.new('GeometryNodeInstanceOnPoints')
    link(tree, inputs.outputs["Geometry"], instances.inputs["Points"])
    link(tree, selection, instances.inputs["Selection"])
    link(tree, sphere.outputs["Mesh"], instances.inputs["Instance"])
    link(tree, named_attribute(tree, "rotation", 'QUATERNION'), instances.inputs["Rotation"])
    link(tree, sized.outputs["Vector"], instances.inputs["Scale"])
    return with_material(tree, instances.outputs["Instances"], splat_material(ELLIPSOID_MATERIAL, 'INSTANCER', "color"))


def splat_points(tree: bpy.types.NodeTree, inputs: bpy.types.Node, selection: bpy.types.NodeSocket,
                 scale: bpy.types.NodeSocket) -> bpy.types.NodeSocket:
    """Points on the selected Gaussians with radius mean(scale) x Size (the fallback display)."""
    mean = tree.nodes.new('ShaderNodeVectorMath')
    mean.operation = 'DOT_PRODUCT'
    link(tree, scale, mean.inputs[0])
    mean.inputs[1].default_value = (1 / 3, 1 / 3, 1 / 3)
    points = tree.nodes.new('GeometryNodeMeshToPoints')
    link(tree, inputs.outputs["Geometry"], points.inputs["Mesh"])
    link(tree, selection, points.inputs["Selection"])
    link(tree, math(tree, 'MULTIPLY', mean.outputs["Value"], inputs.outputs["Size"]), points.inputs["Radius"])
    store = tree.nodes.new('GeometryNodeStoreNamedAttribute')
    store.data_type = 'FLOAT_COLOR'
    store.domain = 'POINT'
    link(tree, points.outputs["Points"], store.inputs["Geometry"])
    store.inputs["Name"].default_value = POINT_COLOR_ATTRIBUTE
    link(tree, named_attribute(tree, "color", 'FLOAT_COLOR'), store.inputs["Value"])
    material = splat_material(POINT_MATERIAL, 'GEOMETRY', POINT_COLOR_ATTRIBUTE)
    return with_material(tree, store.outputs["Geometry"], material)


def with_material(tree: bpy.types.NodeTree, geometry: bpy.types.NodeSocket,
                  material: bpy.types.Material) -> bpy.types.NodeSocket:
    """geometry with material set on all of it."""
    node = tree.nodes.new('GeometryNodeSetMaterial')
    link(tree, geometry, node.inputs["Geometry"])
    node.inputs["Material"].default_value = material
    return node.outputs["Geometry"]


def splat_material(name: str, attribute_type: str, attribute: str) -> bpy.types.Material:
    """Unlit material showing a colour attribute (RGB, alpha = opacity); reused when already built."""
    material = next((m for m in bpy.data.materials if m.get(VERSION_KEY) == GROUP_VERSION
                     and m.get(MATERIAL_KEY) == name), None)
    if material is not None:
        return material
    material = bpy.data.materials.new(name)
    material[VERSION_KEY] = GROUP_VERSION
    material[MATERIAL_KEY] = name
    if material.node_tree is None:  # Blender 4.x creates materials without nodes; 5.x always has them
        material.use_nodes = True
    material.surface_render_method = 'DITHERED'
    build_material_nodes(material.node_tree, attribute_type, attribute)
    arrange_nodes(material.node_tree)
    return material


def build_material_nodes(tree: bpy.types.NodeTree, attribute_type: str, attribute_name: str) -> None:
    """Attribute -> sRGB decode -> Emission, mixed with Transparent by the attribute's alpha on front faces
    (back faces are transparent, so a ray crossing an ellipsoid counts its opacity once)."""
    tree.nodes.clear()
    attribute = tree.nodes.new('ShaderNodeAttribute')
    attribute.attribute_type = attribute_type
    attribute.attribute_name = attribute_name
    decode = tree.nodes.new('ShaderNodeGamma')
    link(tree, attribute.outputs["Color"], decode.inputs["Color"])
    decode.inputs["Gamma"].default_value = SRGB_GAMMA
    emission = tree.nodes.new('ShaderNodeEmission')
    link(tree, decode.outputs["Color"], emission.inputs["Color"])
    geometry = tree.nodes.new('ShaderNodeNewGeometry')
    front = math(tree, 'SUBTRACT', 1.0, geometry.outputs["Backfacing"])
    front_alpha = math(tree, 'MULTIPLY', attribute.outputs["Alpha"], front)
    transparent = tree.nodes.new('ShaderNodeBsdfTransparent')
    mix = tree.nodes.new('ShaderNodeMixShader')
    link(tree, front_alpha, mix.inputs["Fac"])
    link(tree, transparent.outputs["BSDF"], mix.inputs[1])
    link(tree, emission.outputs["Emission"], mix.inputs[2])
    output = tree.nodes.new('ShaderNodeOutputMaterial')
    link(tree, mix.outputs["Shader"], output.inputs["Surface"])


def arrange_nodes(tree: bpy.types.NodeTree) -> None:
    """Lay nodes out right to left by their distance from the output, so the tree reads well in the editor."""
    depth = {node.name: 0 for node in tree.nodes}
    for _ in range(len(tree.nodes)):
        for node_link in tree.links:
            upstream, downstream = node_link.from_node.name, node_link.to_node.name
            depth[upstream] = max(depth[upstream], depth[downstream] + 1)
    rows: dict[int, int] = {}
    for node in tree.nodes:
        column = depth[node.name]
        rows[column] = rows.get(column, 0) + 1
        node.location = (-220.0 * column, -180.0 * rows[column])
