"""Contracts shared by the engine (core) and the Blender add-on: standard library and numpy only, no torch, no bpy.

The add-on zip bundles this package, so both sides import the one implementation instead of keeping twins.
"""
