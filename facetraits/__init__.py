"""facetraits: VGG16 regression of rater-group trait ratings of faces, explained with LRP heatmaps."""
