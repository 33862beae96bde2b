"""The selective state-space core (rssr.layers.ssm): official parameter names and shapes, and the
no-weight-decay marks on the SSM parameters."""
from rssr.layers.ssm import DirectionalSSM


def test_parameters_and_no_weight_decay_marks():
    ssm = DirectionalSSM(d_inner=6, d_state=4, dt_rank=2, directions=3)
    shapes = {name: tuple(param.shape) for name, param in ssm.named_parameters()}
    assert shapes == {'x_proj_weight': (3, 10, 6), 'dt_projs_weight': (3, 6, 2), 'dt_projs_bias': (3, 6),
                      'A_logs': (18, 4), 'Ds': (18,)}
    marked = {name for name, param in ssm.named_parameters() if getattr(param, '_no_weight_decay', False)}
    assert marked == {'A_logs', 'Ds'}
