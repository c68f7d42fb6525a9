"""GatedGCN with an edge stream: equal to a naive per-edge loop over the published equations."""

import pytest
import torch

from molfm.chem.featurize import smiles_to_data
from molfm.nn.gatedgcn import GatedGCNConv


def _loop(conv: GatedGCNConv, x, edge_index, e, training: bool):
    """The layer written edge by edge and node by node, from its equations."""
    n, dim = x.shape
    lin = {k: getattr(conv, k) for k in "ABCDE"}
    edge_hat = []
    numerator = [torch.zeros(dim) for _ in range(n)]
    norm = [torch.zeros(dim) for _ in range(n)]
    for k in range(edge_index.shape[1]):
        j, i = int(edge_index[0, k]), int(edge_index[1, k])  # message j -> i
        hat = lin["D"](x[i]) + lin["E"](x[j]) + lin["C"](e[k])
        gate = torch.sigmoid(hat)
        numerator[i] = numerator[i] + gate * lin["B"](x[j])
        norm[i] = norm[i] + gate
        edge_hat.append(hat)
    node_hat = torch.stack([lin["A"](x[i]) + numerator[i] / (norm[i] + 1e-6) for i in range(n)])
    edge_hat = torch.stack(edge_hat)

    def batch_norm(values, module):
        if training:  # batch statistics, biased variance
            mean, var = values.mean(0), values.var(0, unbiased=False)
        else:
            mean, var = module.running_mean, module.running_var
        return (values - mean) / torch.sqrt(var + module.eps) * module.weight + module.bias

    x_new = torch.relu(batch_norm(node_hat, conv.node_norm))
    e_new = torch.relu(batch_norm(edge_hat, conv.edge_norm))
    return (x + x_new, e + e_new) if conv.residual else (x_new, e_new)


@pytest.mark.parametrize("residual", [True, False])
def test_gatedgcn_equals_a_per_edge_loop(residual):
    # a ring, a branch, an isolated ion (no incoming edge: only A x_i)
    graph = smiles_to_data("CC(=O)Nc1ccc(O)cc1.[Na+]")
    torch.manual_seed(0)
    dim = 16
    x = torch.randn(graph.num_nodes, dim)
    e = torch.randn(graph.edge_index.shape[1], dim)
    conv = GatedGCNConv(dim, residual=residual)
    with torch.no_grad():  # non-trivial BatchNorm parameters
        for norm in (conv.node_norm, conv.edge_norm):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
    for training in (True, False):
        conv.train(training)
        expected = _loop(conv, x, graph.edge_index, e, training)
        out = conv(x, graph.edge_index, e)
        torch.testing.assert_close(out[0], expected[0], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(out[1], expected[1], atol=1e-5, rtol=1e-4)
    if residual:  # the isolated ion's update sees only its own state
        conv.eval()
        moved = x.clone()
        moved[:-1] += 1.0
        torch.testing.assert_close(
            conv(moved, graph.edge_index, e)[0][-1], conv(x, graph.edge_index, e)[0][-1]
        )


def test_gatedgcn_parameters_and_gradients():
    dim = 8
    conv = GatedGCNConv(dim, dropout=0.2)
    # five dim x dim weights with biases, two BatchNorms (weight + bias each)
    assert sum(p.numel() for p in conv.parameters()) == 5 * (dim * dim + dim) + 4 * dim
    graph = smiles_to_data("c1ccccc1O")
    x = torch.randn(graph.num_nodes, dim, requires_grad=True)
    e = torch.randn(graph.edge_index.shape[1], dim, requires_grad=True)
    out_x, out_e = conv.train()(x, graph.edge_index, e)
    (out_x.square().sum() + out_e.square().sum()).backward()
    for name, p in conv.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0 and e.grad.abs().sum() > 0
