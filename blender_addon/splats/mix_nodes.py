"""Mix in the viewport: a Geometry Nodes modifier before a result's display modifier, its Mix input driven by the
object's Mix property (mix.py), so dragging the slider (or animating it) recolours the splats live, with no
worker call.

At Mix 1 the modifier passes the geometry through untouched (and computes nothing). Otherwise it blends each kept
capture column with the result's raw column (capture * (1 - m) + result * m, Blender's Mix node, exact at 0) and
stores what the display reads from the mixed values: for the ellipsoid or point display `color` (the DC colour
clamped at 0 as 3DGS does, alpha the opacity); for Blender's native splats (5.3+) `radiance:base` (DC coefficients
and opacity; stored as a colour attribute, as Geometry Nodes cannot write a 4-float vector, which EEVEE and Cycles
read as they read the imported FLOAT4) and, where the higher bands were kept, `radiance:sh_<i>`. The opacity is
the mixed logit through a sigmoid where it was kept, else the stored one. The groups are shared by the results
with the same layout (io/mix.py's MixLayout) and display.
"""

from __future__ import annotations

import bpy

from ..interchange.ply import OPACITY, SH_DC, rest_names
from ..interchange.sh import C0
from ..io.attributes import attribute_name, capture_attribute
from ..io.mix import MIX_DEFAULT, MIX_MAX, MIX_MIN, MixLayout
from ..io.native import RADIANCE_BASE, sh_attribute
from .display_nodes import arrange_nodes, input_property, link, math, named_attribute
from .mix import MIX_PATH

MIX_MODIFIER_NAME = "Gaussian Splat Mix"
MIX_GROUP_VERSION = 1
MIX_VERSION_KEY = "gaussian_splat_mix_version"
MIX_LAYOUT_KEY = "gaussian_splat_mix_layout"
MIX_INPUT = "Mix"
DISPLAY_COLOUR = "color"


def add_mix_modifier(obj: bpy.types.Object, layout: MixLayout, native: bool) -> bpy.types.Modifier:
    """Add the Mix modifier (to go before the display modifier: add it first) with its input driven by the object's
    Mix property."""
    modifier = obj.modifiers.new(MIX_MODIFIER_NAME, 'NODES')
    modifier.node_group = mix_group(layout, native)
    owner, path = input_property(modifier, MIX_INPUT)
    driver = owner.driver_add(path).driver
    driver.type = 'AVERAGE'
    variable = driver.variables.new()
    variable.type = 'SINGLE_PROP'
    variable.targets[0].id = obj
    variable.targets[0].data_path = MIX_PATH
    return modifier


def mix_modifier(obj: bpy.types.Object) -> bpy.types.Modifier | None:
    """The object's Mix modifier, if it has one."""
    modifier = obj.modifiers.get(MIX_MODIFIER_NAME)
    return modifier if modifier is not None and modifier.type == 'NODES' else None


def layout_key(layout: MixLayout, native: bool) -> str:
    return f"{'native' if native else 'display'} rest={layout.rest} opacity={int(layout.opacity)}"


def mix_group(layout: MixLayout, native: bool) -> bpy.types.NodeTree:
    """The shared Mix group for a layout and display kind: reused when this add-on version built it."""
    key = layout_key(layout, native)
    group = next((g for g in bpy.data.node_groups
                  if g.get(MIX_VERSION_KEY) == MIX_GROUP_VERSION and g.get(MIX_LAYOUT_KEY) == key), None)
    if group is not None:
        return group
    group = bpy.data.node_groups.new(f"Gaussian Splat Mix ({key})", 'GeometryNodeTree')
    group[MIX_VERSION_KEY], group[MIX_LAYOUT_KEY] = MIX_GROUP_VERSION, key
    build_mix_group(group, layout, native)
    arrange_nodes(group)
    return group


def build_mix_group(tree: bpy.types.NodeTree, layout: MixLayout, native: bool) -> None:
    """Geometry in, the display attributes of the mixed values stored, geometry out."""
    tree.interface.new_socket("Geometry", in_out='INPUT', socket_type='NodeSocketGeometry')
    tree.interface.new_socket("Geometry", in_out='OUTPUT', socket_type='NodeSocketGeometry')
    socket = tree.interface.new_socket(MIX_INPUT, in_out='INPUT', socket_type='NodeSocketFloat')
    socket.default_value, socket.min_value, socket.max_value = MIX_DEFAULT, MIX_MIN, MIX_MAX
    inputs = tree.nodes.new('NodeGroupInput')
    output = tree.nodes.new('NodeGroupOutput')
    factor = inputs.outputs[MIX_INPUT]
    dc = [mixed(tree, name, factor) for name in SH_DC]
    stored = DISPLAY_COLOUR if not native else RADIANCE_BASE
    alpha = (sigmoid(tree, mixed(tree, OPACITY, factor)) if layout.opacity
             else stored_alpha(tree, stored))
    colour = dc if native else [math(tree, 'MAXIMUM', math(tree, 'ADD', math(tree, 'MULTIPLY', value, C0), 0.5), 0.0)
                                for value in dc]
    geometry = store(tree, inputs.outputs["Geometry"], stored, 'FLOAT_COLOR', combine_colour(tree, colour, alpha))
    if native:
        rest = [mixed(tree, name, factor) for name in rest_names(3 * layout.rest)]
        for i in range(layout.rest):
            vector = tree.nodes.new('ShaderNodeCombineXYZ')
            for channel in range(3):
                link(tree, rest[channel * layout.rest + i], vector.inputs[channel])
            geometry = store(tree, geometry, sh_attribute(i), 'FLOAT_VECTOR', vector.outputs["Vector"])
    link(tree, unless_unmixed(tree, factor, inputs.outputs["Geometry"], geometry), output.inputs[0])


def unless_unmixed(tree: bpy.types.NodeTree, factor: bpy.types.NodeSocket, unchanged: bpy.types.NodeSocket,
                   mixed_geometry: bpy.types.NodeSocket) -> bpy.types.NodeSocket:
    """The input geometry as it is at Mix 1 (attributes of their own types, nothing evaluated), else the mixed."""
    at_one = tree.nodes.new('FunctionNodeCompare')
    at_one.data_type = 'FLOAT'
    at_one.operation = 'EQUAL'
    link(tree, factor, at_one.inputs[0])
    at_one.inputs[1].default_value = MIX_DEFAULT
    at_one.inputs["Epsilon"].default_value = 0.0
    switch = tree.nodes.new('GeometryNodeSwitch')
    switch.input_type = 'GEOMETRY'
    link(tree, at_one.outputs["Result"], switch.inputs["Switch"])
    link(tree, mixed_geometry, switch.inputs["False"])
    link(tree, unchanged, switch.inputs["True"])
    return switch.outputs["Output"]


def mixed(tree: bpy.types.NodeTree, ply_name: str, factor: bpy.types.NodeSocket) -> bpy.types.NodeSocket:
    """capture * (1 - factor) + result * factor for one PLY column (Blender's Mix node: exact at 0 and 1)."""
    node = tree.nodes.new('ShaderNodeMix')
    node.data_type = 'FLOAT'
    node.clamp_factor = False
    link(tree, factor, by_identifier(node.inputs, "Factor_Float"))
    link(tree, named_attribute(tree, capture_attribute(ply_name), 'FLOAT'), by_identifier(node.inputs, "A_Float"))
    link(tree, named_attribute(tree, attribute_name(ply_name), 'FLOAT'), by_identifier(node.inputs, "B_Float"))
    return by_identifier(node.outputs, "Result_Float")


def by_identifier(sockets, identifier: str) -> bpy.types.NodeSocket:
    """A node's socket by identifier (the Mix node has an A, B and Result socket per data type, one name each)."""
    return next(socket for socket in sockets if socket.identifier == identifier)


def sigmoid(tree: bpy.types.NodeTree, logit: bpy.types.NodeSocket) -> bpy.types.NodeSocket:
    """1 / (1 + exp(-logit))."""
    return math(tree, 'DIVIDE', 1.0, math(tree, 'ADD', 1.0, math(tree, 'EXPONENT', math(tree, 'MULTIPLY', logit,
                                                                                         -1.0))))


def stored_alpha(tree: bpy.types.NodeTree, name: str) -> bpy.types.NodeSocket:
    """The alpha of a colour attribute as stored (the opacity, unchanged by Mix)."""
    separate = tree.nodes.new('FunctionNodeSeparateColor')
    link(tree, named_attribute(tree, name, 'FLOAT_COLOR'), separate.inputs["Color"])
    return separate.outputs["Alpha"]


def combine_colour(tree: bpy.types.NodeTree, rgb: list[bpy.types.NodeSocket],
                   alpha: bpy.types.NodeSocket) -> bpy.types.NodeSocket:
    node = tree.nodes.new('FunctionNodeCombineColor')
    for socket, value in zip(("Red", "Green", "Blue", "Alpha"), (*rgb, alpha)):
        link(tree, value, node.inputs[socket])
    return node.outputs["Color"]


def store(tree: bpy.types.NodeTree, geometry: bpy.types.NodeSocket, name: str, data_type: str,
          value: bpy.types.NodeSocket) -> bpy.types.NodeSocket:
    """Store a point attribute; returns the geometry with it."""
    node = tree.nodes.new('GeometryNodeStoreNamedAttribute')
    node.data_type = data_type
    node.domain = 'POINT'
    node.inputs["Name"].default_value = name
    link(tree, geometry, node.inputs["Geometry"])
    link(tree, value, node.inputs["Value"])
    return node.outputs["Geometry"]
