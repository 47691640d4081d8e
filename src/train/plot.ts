// The training plot: loss (train, per logged step; validation, per evaluation) and validation accuracy against epochs,
// drawn with vega-lite and rendered to SVG in Node (no browser, no canvas).

import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

export interface PlotPoints {
  /** Training loss as logged: epoch as a fraction (e.g. 2.5 = half-way through the third epoch). */
  train: { epoch: number; loss: number }[];
  /** One point per evaluation. */
  evals: { epoch: number; valLoss: number; valAccuracy: number }[];
}

export async function renderTrainingPlot(p: PlotPoints, title: string): Promise<string> {
  const losses = [
    ...p.train.map((r) => ({ epoch: r.epoch, loss: r.loss, series: 'train' })),
    ...p.evals.map((r) => ({ epoch: r.epoch, loss: r.valLoss, series: 'validation' })),
  ];
  const accuracy = p.evals.map((r) => ({ epoch: r.epoch, accuracy: r.valAccuracy }));
  const x = { field: 'epoch', type: 'quantitative', title: 'epoch' } as const;
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    hconcat: [
      {
        title: 'loss',
        width: 360,
        height: 240,
        data: { values: losses },
        mark: { type: 'line', point: false, clip: true },
        encoding: {
          x,
          y: { field: 'loss', type: 'quantitative', title: 'cross-entropy', scale: { zero: false } },
          color: { field: 'series', type: 'nominal', title: null, legend: { orient: 'top-right' } },
        },
      },
      {
        title: 'validation accuracy',
        width: 360,
        height: 240,
        data: { values: accuracy },
        mark: { type: 'line', point: true },
        encoding: {
          x,
          y: { field: 'accuracy', type: 'quantitative', title: 'top-1', scale: { zero: false }, axis: { format: '.1%' } },
        },
      },
    ],
  };
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
