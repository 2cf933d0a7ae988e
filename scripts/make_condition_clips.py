"""The 13 evaluation clips of gtzan-sample under the robustness issue's capture conditions, as files:
ffmpeg as a user would make them (gains, stereo, rates, MP3/AAC, 16 kHz) and the seeded small
speaker into a room (with and without pink noise at 15 dB SNR) of genrecast.trainer.conditions.
The README's 13-clip table comes from classifying each folder:

    .venv/bin/python scripts/make_condition_clips.py /tmp/cond13
    for d in /tmp/cond13/*/; do echo "$d"; .venv/bin/genrecast classify --json "$d"* | grep '"verdict"'; done
"""
import subprocess, sys
from pathlib import Path
import numpy as np, soundfile as sf
from genrecast.daemon.audio import load_audio
from genrecast.trainer import conditions as C
from genrecast.trainer.shifts import EVALUATION_CLIPS

DATA = Path(__file__).resolve().parents[1].parent / 'shared' / 'data' / 'gtzan-sample'
OUT = Path(sys.argv[1] if len(sys.argv) > 1 else '/tmp/cond13')
FF = {
    'clean': None,
    'gain-3dB': (['-af', 'volume=-3dB'], 'wav'), 'gain+3dB': (['-af', 'volume=3dB'], 'wav'),
    'gain-24dB': (['-af', 'volume=-24dB'], 'wav'), 'gain+6dB': (['-af', 'volume=6dB'], 'wav'),
    'stereo': (['-ac', '2'], 'wav'), 'rate44100': (['-ar', '44100'], 'wav'), 'rate48000': (['-ar', '48000'], 'wav'),
    'mp3-128k-stereo44k': (['-ac', '2', '-ar', '44100', '-c:a', 'libmp3lame', '-b:a', '128k'], 'mp3'),
    'aac-96k-stereo44k': (['-ac', '2', '-ar', '44100', '-c:a', 'aac', '-b:a', '96k'], 'm4a'),
    'mp3-48k': (['-c:a', 'libmp3lame', '-b:a', '48k'], 'mp3'),
    'wideband16k': (['-ar', '16000'], 'wav'),
}
for cid in EVALUATION_CLIPS:
    src = next((DATA / cid.split('.')[0]).glob(cid + '.*'))
    for name, spec in FF.items():
        d = OUT / name; d.mkdir(parents=True, exist_ok=True)
        if spec is None:
            dst = d / src.name
            if not dst.exists(): dst.symlink_to(src.resolve())
            continue
        args, ext = spec
        dst = d / f'{cid}.{ext}'
        if not dst.exists():
            subprocess.run(['ffmpeg', '-nostdin', '-loglevel', 'error', '-threads', '1', '-i', str(src), *args, str(dst)], check=True)
    audio = load_audio(src, 22050)
    for i, name in enumerate(['speaker-room', 'speaker-room-noise15dB']):
        d = OUT / name; d.mkdir(parents=True, exist_ok=True)
        dst = d / f'{cid}.wav'
        if not dst.exists():
            rng = np.random.default_rng([0, EVALUATION_CLIPS.index(cid)])
            sf.write(dst, C.BY_NAME[name].apply(audio, 22050, rng), 22050, subtype='FLOAT')
print('done')
