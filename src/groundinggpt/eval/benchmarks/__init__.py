"""One module per benchmark: its reader, its published metric and its task, top to bottom.

========================  =================================================================
module                    benchmark (task name)
========================  =================================================================
``refcoco``               RefCOCO / RefCOCO+ / RefCOCOg REC, Acc@0.5 (``rec``)
``pope``                  POPE object hallucination, yes/no metrics (``pope``)
``vqav2``                 VQAv2, the official answer normalisation and accuracy (``vqav2``)
``charades_sta``          Charades-STA temporal grounding, R@1 / mIoU (``charades-sta``)
``video_qa``              ActivityNet-QA / MSVD-QA / MSRVTT-QA, GPT-judged (``video-qa``)
``vggss``                 VGG-SS sound-source localisation, cIoU / AUC (``vggss``)
``synthetic``             the synthetic world's test sets (``synthetic``)
========================  =================================================================

What they share (file helpers, the predictions file, coercing scored values) is
:mod:`groundinggpt.eval.io`; the task interface and registry is :mod:`groundinggpt.eval.tasks`.
A new benchmark is one more module here, listed in ``tasks._TASK_MODULES``.
"""
