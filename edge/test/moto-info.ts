/** What test/moto_launcher.py prints: the moto endpoints, fault endpoints and keys the tests use. */
export interface MotoInfo {
  queueUrl: string;
  slowQueueUrl: string;
  failingQueueUrl: string;
  downQueueUrl: string;
  /** Stand-in endpoint; the queue name in the URL picks its behaviour (see moto_launcher.py). */
  stub: string;
  region: string;
  producerKeyId: string;
  producerSecret: string;
  deniedKeyId: string;
  deniedSecret: string;
  control: string;
}
