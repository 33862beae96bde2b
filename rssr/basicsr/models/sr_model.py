"""rssr's model class: BasicSR's SRModel made device-agnostic and safe to train with for days.

Use it with ``model_type: RSSRModel``. Beside what SRModel does, it

* runs one YAML on CPU, one GPU or many (DDP without ``device_ids`` on CPU/gloo; ``num_gpu`` asking
  for GPUs on a machine without CUDA falls back to the CPU with a warning);
* offers ``optim_g.type`` Adam, AdamW and SGD, and keeps the parameters that take no weight decay
  out of it (:func:`weight_decay_groups`: the Mamba flag ``param._no_weight_decay`` and the SwinIR/timm
  methods ``no_weight_decay()`` / ``no_weight_decay_keywords()`` of the network);
* reads these ``train`` options (all optional)::

      amp: bf16            # autocast dtype: bf16, fp16 (with a grad scaler) or false
      grad_clip_norm: 1.0  # clip the global gradient norm
      grad_accum_steps: 4  # split each batch into 4 micro-batches, one optimizer step per iteration
      nan_guard: true      # stop with advice on a NaN/Inf loss or gradient (default true)
      spectral_opt:        # a spectral loss added to the pixel loss, e.g. RatioIndexLoss / SAMLoss
        type: RatioIndexLoss

* reads top-level ``band_normalization`` (per-band standardisation around the network, optionally a
  bicubic residual; see :mod:`rssr.band_normalization`): the pixel loss compares normalised
  output and GT, spectral and perceptual losses, validation and saved images physical values; the
  normalisation is saved with every checkpoint and taken from ``pretrain_network_g`` when testing;
* stores with every checkpoint the names of the bands the network takes, in order, when the rasters of
  ``datasets.train`` describe them (``rssr.infer`` then reads files' bands by them);
* reads top-level ``deterministic: true`` (deterministic kernels; with ``manual_seed``, reruns give
  identical losses) and ``logger.checkpoint_format: safetensors`` (network weights as .safetensors);
* saves the random state of every rank in its training states, so that ``--auto_resume`` (with
  :mod:`rssr.basicsr.distributed`) continues with the same loss sequence as an uninterrupted run.
"""
from __future__ import annotations

import os
import warnings
from collections import OrderedDict
from contextlib import nullcontext
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import torch
from torch.nn.parallel import DistributedDataParallel

from rssr.band_normalization import (
    BandNormalization,
    BandNormalizationError,
    BandNormalizedSR,
    resolve_band_normalization,
)
from rssr.basicsr import distributed, guards
from rssr.basicsr.datasets import build_dataset_from_options, dataset_band_names
from rssr.basicsr.models.multiband_validation import MultibandValidationMixin
from rssr.checkpoint import CheckpointError
from rssr.data.band_statistics import dataset_band_statistics
from rssr.errors import NonFiniteLossError
from rssr.inference.self_ensemble import SelfEnsemble
from rssr.registry import register_model
from rssr.utils import AUTOCAST_DTYPES

from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import get_dist_info

OPTIMIZERS = {'Adam': torch.optim.Adam, 'AdamW': torch.optim.AdamW, 'SGD': torch.optim.SGD}
# SRModel's train keys, declared with RSSRModel's own (its source reads them through BasicSR's helpers).
SRMODEL_TRAIN_KEYS = {'ema_decay', 'optim_g', 'scheduler', 'total_iter', 'warmup_iter', 'pixel_opt', 'perceptual_opt'}


def optimizer_class(name: str) -> type:
    try:
        return OPTIMIZERS[name]
    except KeyError:
        raise ValueError(f'train.optim_g.type {name!r} is not supported; use one of {", ".join(OPTIMIZERS)}') from None


def amp_dtype(train_opt: Dict[str, Any]) -> Optional[torch.dtype]:
    """The autocast dtype asked for by ``train.amp`` (None: full precision)."""
    value = train_opt.get('amp', False)
    if value in (False, None, 'false', 'none', 'fp32'):
        return None
    if value not in AUTOCAST_DTYPES:
        raise ValueError(f'train.amp must be bf16, fp16 or false, not {value!r}')
    return AUTOCAST_DTYPES[value]


def no_weight_decay_names(net: torch.nn.Module) -> Set[str]:
    """Names of the parameters of ``net`` that take no weight decay: flagged ``param._no_weight_decay = True``
    (the Mamba convention, e.g. ``A_logs`` and ``Ds``), named by ``net.no_weight_decay()`` or containing a
    keyword of ``net.no_weight_decay_keywords()`` (the SwinIR/timm convention)."""
    names = set(net.no_weight_decay()) if hasattr(net, 'no_weight_decay') else set()
    keywords = set(net.no_weight_decay_keywords()) if hasattr(net, 'no_weight_decay_keywords') else set()
    return {name for name, param in net.named_parameters()
            if getattr(param, '_no_weight_decay', False) or name in names or any(k in name for k in keywords)}


def weight_decay_groups(net: torch.nn.Module, weight_decay: float) -> List[Dict[str, Any]]:
    """Optimizer parameter groups of the trainable parameters of ``net``: with a ``weight_decay``, those of
    :func:`no_weight_decay_names` in a group of their own with weight decay 0 (empty groups left out);
    without, one group (the optimizer state of runs saved before this split still loads)."""
    trainable = [(name, param) for name, param in net.named_parameters() if param.requires_grad]
    if not weight_decay:
        return [{'params': [param for _, param in trainable]}]
    exempt = no_weight_decay_names(net)
    groups = [{'params': [p for n, p in trainable if n not in exempt]},
              {'params': [p for n, p in trainable if n in exempt], 'weight_decay': 0.0}]
    return [group for group in groups if group['params']]


@register_model()
class RSSRModel(MultibandValidationMixin, SRModel):
    """Single-image SR model: SRModel plus device-agnostic DDP, AMP, clipping, accumulation, NaN guard,
    and (from :class:`MultibandValidationMixin`) any band count, nodata masks and GeoTIFF outputs."""

    # declared to the option checker (rssr.basicsr.declarations)
    train_option_keys = SRMODEL_TRAIN_KEYS | {'amp', 'grad_clip_norm', 'grad_accum_steps', 'nan_guard', 'spectral_opt'}
    optimizers_by_name = OPTIMIZERS
    top_level_option_keys = ('band_normalization',)

    def __init__(self, opt: Dict[str, Any]) -> None:
        if opt.get('num_gpu', 0) not in (0, None) and not torch.cuda.is_available():
            warnings.warn(f'num_gpu is {opt["num_gpu"]} but CUDA is not available: training on the CPU')
            opt['num_gpu'] = 0
        if opt.get('deterministic'):
            make_deterministic()
        self.stored_band_normalization: Optional[Dict[str, Any]] = None  # set by load_network
        self.stored_bands: Tuple[str, ...] = ()  # set by load_network
        super().__init__(opt)
        self.band_normalization = self._resolve_band_normalization()
        train_set = (self.opt.get('datasets') or {}).get('train')
        self.band_names = dataset_band_names(train_set) if train_set else self.stored_bands

    # ---- band normalisation --------------------------------------------------------------------
    def _resolve_band_normalization(self) -> BandNormalization:
        """The options' ``band_normalization``, else the one stored with ``pretrain_network_g``. Mode
        dataset without mean/std takes them from that checkpoint, else (training) from datasets.train."""
        normalization = resolve_band_normalization(self.opt.get('band_normalization'), self.stored_band_normalization)
        if normalization.needs_statistics and not self.is_train:
            raise BandNormalizationError('band_normalization mode dataset needs mean and std: give them in the '
                                         'options, or set path.pretrain_network_g to a checkpoint trained with them '
                                         '(it stores them)')
        if normalization.needs_statistics:
            normalization = self._training_set_statistics(normalization)
        get_root_logger().info(f'Band normalisation: {normalization.describe()}')
        return normalization

    def _training_set_statistics(self, normalization: BandNormalization) -> BandNormalization:
        """Per-band mean/std of datasets.train's GT, computed on rank 0 and broadcast to every rank."""
        dataset_opt = (self.opt.get('datasets') or {}).get('train')
        if dataset_opt is None:
            raise BandNormalizationError('band_normalization mode dataset without mean/std needs datasets.train to '
                                         'compute them')
        found: List[Any] = [None]
        if get_dist_info()[0] == 0:
            get_root_logger().info('Band normalisation: computing the per-band mean/std of datasets.train ...')
            found = [dataset_band_statistics(build_dataset_from_options(dataset_opt))]
        if self.opt['dist']:
            torch.distributed.broadcast_object_list(found, src=0)
        statistics = found[0]
        return normalization.with_statistics(
            statistics.mean, statistics.std,
            f'datasets.train {dataset_opt.get("name", dataset_opt["type"])} ({statistics.pixels} valid GT pixels)')

    def normalized_network(self, net: torch.nn.Module) -> BandNormalizedSR:
        """``net`` (bare or DDP-wrapped) between this model's band normalisation and its inverse."""
        return BandNormalizedSR(net, self.band_normalization)

    def whole_input_network(self, net: torch.nn.Module) -> torch.nn.Module:
        """:meth:`normalized_network` with the statistics of the whole current ``lq`` fixed, so that the
        parts of a partitioned test are normalised alike (mode image)."""
        network = self.normalized_network(net)
        statistics = network.statistics(self.lq, getattr(self, 'lq_valid', None))
        return network if statistics is None else network.with_statistics(*statistics)

    def evaluation_net(self) -> torch.nn.Module:
        """``net_g_ema`` if kept, else ``net_g``; with ``val.self_ensemble: true`` averaged over the 8
        flips/rotations (:class:`rssr.inference.SelfEnsemble`, 8x the time)."""
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g
        return SelfEnsemble(net) if (self.opt.get('val') or {}).get('self_ensemble', False) else net

    def test(self) -> None:
        """SRModel's test through the band normalisation: ``self.output`` in physical units."""
        net = self.evaluation_net()
        was_training = net.training
        net.eval()
        with torch.no_grad():
            self.output = self.normalized_network(net)(self.lq, getattr(self, 'lq_valid', None))
        net.train(was_training)

    # ---- devices -------------------------------------------------------------------------------
    model_to_device = distributed.model_to_device  # DDP with device_ids only on CUDA
    dist_validation = distributed.validate_on_rank_zero  # rank 0 on the unwrapped nets, the others wait

    # ---- training settings ---------------------------------------------------------------------
    def init_training_settings(self) -> None:
        train_opt = self.opt['train']
        self.amp_dtype = amp_dtype(train_opt)
        self.grad_clip_norm = train_opt.get('grad_clip_norm')
        self.grad_accum_steps = int(train_opt.get('grad_accum_steps', 1))
        if self.grad_accum_steps < 1:
            raise ValueError(f'train.grad_accum_steps must be >= 1, not {self.grad_accum_steps}')
        self.nan_guard = train_opt.get('nan_guard', True)
        self.grad_scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        super().init_training_settings()
        from basicsr.losses import build_loss
        spectral_opt = train_opt.get('spectral_opt')
        self.cri_spectral = build_loss(spectral_opt).to(self.device) if spectral_opt else None

    def setup_optimizers(self) -> None:
        """SRModel's ``optim_g`` for ``net_g``, with the parameters that take no weight decay in a group of
        their own (:func:`weight_decay_groups`); frozen parameters are left out, as SRModel does."""
        optim_opt = self.opt['train']['optim_g']
        optim_type = optim_opt.pop('type')
        net = self.get_bare_model(self.net_g)
        logger = get_root_logger()
        for name, param in net.named_parameters():
            if not param.requires_grad:
                logger.warning(f'Params {name} will not be optimized.')
        groups = weight_decay_groups(net, optim_opt.get('weight_decay', 0))
        if optim_opt.get('weight_decay'):
            exempt = sum(len(group['params']) for group in groups if group.get('weight_decay') == 0)
            logger.info(f'Weight decay {optim_opt["weight_decay"]}: {exempt} parameter tensors of '
                        f'{type(net).__name__} are exempt (no_weight_decay flags and names).')
        self.optimizer_g = self.get_optimizer(optim_type, groups, **optim_opt)
        self.optimizers.append(self.optimizer_g)

    def get_optimizer(self, optim_type: str, params: Iterable, lr: float, **kwargs: Any) -> torch.optim.Optimizer:
        return optimizer_class(optim_type)(params, lr, **kwargs)

    # ---- one iteration -------------------------------------------------------------------------
    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _losses(self, output: torch.Tensor, gt: torch.Tensor, weight: Optional[torch.Tensor],
                normalized: Optional[Tuple[torch.Tensor, torch.Tensor]] = None) -> Dict[str, torch.Tensor]:
        """SRModel's pixel and perceptual losses and the spectral loss, by name; ``weight`` masks nodata
        pixels. The pixel loss compares ``normalized`` (band-normalised output and GT) when given; the
        spectral and perceptual losses compare physical values (``output``, ``gt``)."""
        losses = OrderedDict()
        pixel_output, pixel_gt = normalized if normalized is not None else (output, gt)
        if self.cri_pix:
            losses['l_pix'] = self.cri_pix(pixel_output, pixel_gt) if weight is None else \
                self.cri_pix(pixel_output, pixel_gt, weight=weight)
        if self.cri_spectral is not None:
            losses['l_spectral'] = self.cri_spectral(output, gt) if weight is None else \
                self.cri_spectral(output, gt, weight=weight)
        if self.cri_perceptual:
            l_percep, l_style = self.cri_perceptual(output, gt)
            if l_percep is not None:
                losses['l_percep'] = l_percep
            if l_style is not None:
                losses['l_style'] = l_style
        return losses

    def optimize_parameters(self, current_iter: int) -> None:
        """One optimizer step on the current batch, computed in ``grad_accum_steps`` micro-batches."""
        self.optimizer_g.zero_grad(set_to_none=True)
        network = self.normalized_network(self.net_g)
        micro_lq = self.lq.chunk(self.grad_accum_steps)
        micro_gt = self.gt.chunk(self.grad_accum_steps)
        micro_weight = _chunks(self.pixel_weight, len(micro_lq))
        micro_lq_valid = _chunks(getattr(self, 'lq_valid', None), len(micro_lq))
        summed: Dict[str, torch.Tensor] = OrderedDict()
        outputs = []
        for index, (lq, gt, weight, lq_valid) in enumerate(zip(micro_lq, micro_gt, micro_weight, micro_lq_valid)):
            last = index == len(micro_lq) - 1
            wrapped = isinstance(self.net_g, DistributedDataParallel)
            sync = self.net_g.no_sync() if wrapped and not last else nullcontext()
            with sync:
                statistics = network.statistics(lq, lq_valid)
                with self._autocast():
                    normalized_output = network.predict_normalized(network.normalize(lq, statistics))
                normalized_output = normalized_output.float()
                output = network.denormalize(normalized_output, statistics)
                normalized = None if statistics is None else (normalized_output, network.normalize(gt, statistics))
                losses = self._losses(output, gt, weight, normalized)
                total = sum(losses.values())
                self._check_finite(total, current_iter, 'loss', losses)
                share = lq.shape[0] / self.lq.shape[0]
                self.grad_scaler.scale(total * share).backward()
            outputs.append(output.detach())
            for name, value in losses.items():
                summed[name] = summed.get(name, 0) + value.detach() * share
        self.output = torch.cat(outputs)

        self.grad_scaler.unscale_(self.optimizer_g)
        grad_norm = self._clip_and_measure_gradients()
        if self.amp_dtype != torch.float16:  # under fp16 the scaler skips steps with inf gradients itself
            self._check_finite(grad_norm, current_iter, 'gradient norm', summed)
        self.grad_scaler.step(self.optimizer_g)
        self.grad_scaler.update()

        summed['grad_norm'] = grad_norm.detach()
        self.log_dict = self.reduce_loss_dict(summed)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def _clip_and_measure_gradients(self) -> torch.Tensor:
        """Global gradient norm before clipping; clips to ``grad_clip_norm`` when set."""
        params = [p for p in self.net_g.parameters() if p.grad is not None]
        max_norm = float(self.grad_clip_norm) if self.grad_clip_norm else float('inf')
        return torch.nn.utils.clip_grad_norm_(params, max_norm)

    def _check_finite(self, value: torch.Tensor, current_iter: int, what: str, losses: Dict[str, torch.Tensor]) -> None:
        """NaN guard: stop all ranks together, with advice, when ``value`` is NaN or Inf."""
        if not self.nan_guard:
            return
        bad = (~torch.isfinite(value.detach())).float().reshape(1)
        if self.opt['dist']:
            torch.distributed.all_reduce(bad)
        if bad.item() == 0:
            return
        shown = ', '.join(f'{name}={float(v.detach()):.4g}' for name, v in losses.items())
        advice = ['lower train.optim_g.lr', 'set train.grad_clip_norm (e.g. 1.0)']
        advice.append('use train.amp: bf16 instead of fp16' if self.amp_dtype == torch.float16
                      else 'check the input data for NaN/Inf values (e.g. nodata pixels)')
        raise NonFiniteLossError(
            f'rssr: training stopped at iteration {current_iter}: the {what} is not finite ({shown}). '
            f'Training on would only produce garbage weights. Resume from the last saved state with '
            f'--auto_resume after you {"; ".join(advice)}. (Disable this check with train.nan_guard: false.)')

    # ---- checkpoints ---------------------------------------------------------------------------
    save_network = guards.save_network  # the one writer of network checkpoints (BasicSR's models too)

    def load_network(self, net: torch.nn.Module, load_path: str, strict: bool = True,
                     param_key: Optional[str] = 'params') -> None:
        """Load ``param_key`` (falling back to ``params``) from a .pth or .safetensors file, safely."""
        from rssr.checkpoint import load_weights, read_checkpoint, stored_band_normalization, stored_bands
        checkpoint = read_checkpoint(load_path)
        self.stored_band_normalization = stored_band_normalization(checkpoint)
        self.stored_bands = stored_bands(checkpoint)
        if param_key is not None and param_key not in checkpoint and 'params' in checkpoint:
            param_key = 'params'
        if param_key not in checkpoint:
            param_key = None
        get_root_logger().info(f'Loading {type(self.get_bare_model(net)).__name__} from {load_path} '
                               f'[{param_key or "state_dict"}].')
        load_weights(self.get_bare_model(net), checkpoint, strict=strict, key=param_key)

    def save_training_state(self, epoch: int, current_iter: int) -> None:
        """BasicSR's training state plus the grad scaler and every rank's random state."""
        if current_iter == -1:
            return
        rng_states = distributed.gather_rng_states(self.opt)  # collective: every rank takes part
        if self.opt['rank'] != 0:
            return
        state = {'epoch': epoch, 'iter': current_iter,
                 'optimizers': [o.state_dict() for o in self.optimizers],
                 'schedulers': [s.state_dict() for s in self.schedulers],
                 'grad_scaler': self.grad_scaler.state_dict(), 'rng': rng_states}
        path = os.path.join(self.opt['path']['training_states'], f'{current_iter}.state')
        torch.save(state, path + '.tmp')
        os.replace(path + '.tmp', path)  # a run killed while saving never leaves a truncated state

    def resume_training(self, resume_state: Dict[str, Any]) -> None:
        saved = [len(state['param_groups']) for state in resume_state['optimizers']]
        current = [len(optimizer.param_groups) for optimizer in self.optimizers]
        if saved != current:
            raise CheckpointError(
                f'path.resume_state: its optimizers have {saved} parameter groups, this run builds {current}. '
                'Training states saved before rssr exempted SSM parameters (A_logs, Ds) from weight decay have '
                'one group; resume with train.optim_g.weight_decay: 0, or start a new run from the weights '
                '(path.pretrain_network_g) instead of the training state.')
        super().resume_training(resume_state)
        if resume_state.get('grad_scaler'):
            self.grad_scaler.load_state_dict(resume_state['grad_scaler'])


def _chunks(tensor: Optional[torch.Tensor], count: int) -> Sequence[Optional[torch.Tensor]]:
    """``tensor`` split into ``count`` micro-batches along the batch axis, or ``count`` Nones."""
    return [None] * count if tensor is None else tensor.chunk(count)


def make_deterministic() -> None:
    """Deterministic kernels everywhere (reruns with the same seed give identical losses)."""
    os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


__all__: List[str] = ['RSSRModel', 'make_deterministic', 'no_weight_decay_names', 'weight_decay_groups']
