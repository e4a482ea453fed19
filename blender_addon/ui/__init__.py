"""What the user touches: operators, panels, properties, preferences and the render engine, each module with
one CLASSES tuple to register. Thin over the layers below; nothing below imports from here."""
