{{/* Names, labels and the environment both processes share. */}}

{{- define "audience.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "audience.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A component's name: the full name with the component, within the 63 characters of a label value. */}}
{{- define "audience.componentName" -}}
{{- printf "%s-%s" (include "audience.fullname" .root | trunc (int (sub 62 (len .component))) | trimSuffix "-") .component -}}
{{- end -}}

{{- define "audience.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "audience.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "audience.selectorLabels" -}}
app.kubernetes.io/name: {{ include "audience.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Selector labels of one component (api, silo). */}}
{{- define "audience.componentSelector" -}}
{{ include "audience.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "audience.componentLabels" -}}
{{ include "audience.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "audience.clusterId" -}}
{{- default (include "audience.fullname" .) .Values.orleans.clusterId -}}
{{- end -}}

{{- define "audience.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "audience.componentName" (dict "root" . "component" "silo")) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "audience.postgresSecretName" -}}
{{- if .Values.postgres.existingSecret -}}
{{- .Values.postgres.existingSecret -}}
{{- else if .Values.postgres.connectionString -}}
{{- printf "%s-postgres" (include "audience.fullname" .) -}}
{{- else -}}
{{- fail "postgres.existingSecret (a Secret with the connection string) or postgres.connectionString is required: in Kafka mode every process reads PostgreSQL" -}}
{{- end -}}
{{- end -}}

{{- define "audience.image" -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) -}}
{{- end -}}

{{/*
The configuration both processes read, as environment variables of the service's keys (":" is "__"): Kafka mode,
PostgreSQL from its Secret, Aerospike when set, the Orleans cluster, the HTTP URL, logging and OTLP.
*/}}
{{- define "audience.sharedEnv" -}}
{{- $root := .root -}}
- name: ASPNETCORE_URLS
  value: {{ printf "http://+:%v" $root.Values.httpPort | quote }}
- name: Kafka__BootstrapServers
  value: {{ required "kafka.bootstrapServers is required: the chart runs the service in Kafka mode" $root.Values.kafka.bootstrapServers | quote }}
- name: Kafka__Topics__UserEvents
  value: {{ $root.Values.kafka.topics.userEvents | quote }}
- name: Kafka__Topics__SegmentUpdates
  value: {{ $root.Values.kafka.topics.segmentUpdates | quote }}
- name: Kafka__Topics__UserSegments
  value: {{ $root.Values.kafka.topics.userSegments | quote }}
- name: Kafka__Topics__OrdersAnalytics
  value: {{ $root.Values.kafka.topics.ordersAnalytics | quote }}
- name: Kafka__Topics__DeadLetter
  value: {{ $root.Values.kafka.topics.deadLetter | quote }}
- name: Kafka__Topics__NotificationRequests
  value: {{ $root.Values.kafka.topics.notificationRequests | quote }}
{{- with $root.Values.kafka.securityProtocol }}
- name: Kafka__SecurityProtocol
  value: {{ . | quote }}
{{- end }}
{{- with $root.Values.kafka.saslMechanism }}
- name: Kafka__SaslMechanism
  value: {{ . | quote }}
{{- end }}
{{- with $root.Values.kafka.saslUsername }}
- name: Kafka__SaslUsername
  value: {{ . | quote }}
{{- end }}
{{- with $root.Values.kafka.saslPasswordSecret }}
- name: Kafka__SaslPassword
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $root.Values.kafka.saslPasswordKey }}
{{- end }}
{{- if $root.Values.kafka.caSecret }}
- name: Kafka__SslCaLocation
  value: /etc/audience/kafka/ca.pem
{{- end }}
- name: Postgres__ConnectionString
  valueFrom:
    secretKeyRef:
      name: {{ include "audience.postgresSecretName" $root }}
      key: {{ $root.Values.postgres.connectionStringKey }}
{{- with $root.Values.aerospike.hosts }}
- name: Aerospike__Hosts
  value: {{ . | quote }}
- name: Aerospike__Namespace
  value: {{ $root.Values.aerospike.namespace | quote }}
{{- with $root.Values.aerospike.setPrefix }}
- name: Aerospike__SetPrefix
  value: {{ . | quote }}
{{- end }}
{{- end }}
- name: Orleans__ServiceId
  value: {{ $root.Values.orleans.serviceId | quote }}
- name: Orleans__ClusterId
  value: {{ include "audience.clusterId" $root | quote }}
- name: Rules__Engine
  value: {{ $root.Values.rulesEngine | quote }}
- name: Logging__Console__FormatterName
  value: {{ $root.Values.logging.format | quote }}
- name: OTEL_SERVICE_NAME
  value: {{ printf "audience-%s" .component | quote }}
{{- if $root.Values.metrics.traces }}
- name: Telemetry__Traces
  value: "true"
{{- end }}
{{- with $root.Values.metrics.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- range $key, $value := .config }}
- name: {{ $key | replace ":" "__" }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/* Probes on the health endpoints: started (live once), live, ready (docs/operations.md, Health). */}}
{{- define "audience.probes" -}}
startupProbe:
  httpGet:
    path: /health/live
    port: http
  periodSeconds: 2
  failureThreshold: {{ .startupFailures }}
livenessProbe:
  httpGet:
    path: /health/live
    port: http
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /health/ready
    port: http
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
{{- end -}}

{{- define "audience.podAnnotations" -}}
{{- if .root.Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .root.Values.httpPort | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- with .annotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The writable directories a read-only root filesystem leaves the .NET runtime: /tmp. */}}
{{- define "audience.tmpVolumeMount" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.kafka.caSecret }}
- name: kafka-ca
  mountPath: /etc/audience/kafka
  readOnly: true
{{- end }}
{{- end -}}

{{/* The volumes the mounts above name: /tmp, and the brokers' authority when kafka.caSecret is set. */}}
{{- define "audience.volumes" -}}
- name: tmp
  emptyDir: {}
{{- with .Values.kafka.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ . }}
    items:
      - key: {{ $.Values.kafka.caKey }}
        path: ca.pem
{{- end }}
{{- end -}}

{{/*
A Druid supervisor spec from files/druid: its topic, the brokers (kafka.bootstrapServers) and druid.consumerProperties,
and the task settings of the values; the rest as the file has it.
*/}}
{{- define "audience.druidSpec" -}}
{{- $root := .root -}}
{{- $spec := $root.Files.Get .file | fromJson -}}
{{- $io := $spec.spec.ioConfig -}}
{{- $brokers := dict "bootstrap.servers" (required "kafka.bootstrapServers is required" $root.Values.kafka.bootstrapServers) -}}
{{- $_ := set $io "consumerProperties" (merge $brokers $root.Values.druid.consumerProperties $io.consumerProperties) -}}
{{- $_ := set $io "topic" .topic -}}
{{- $_ := set $io "taskCount" $root.Values.druid.taskCount -}}
{{- $_ := set $io "replicas" $root.Values.druid.replicas -}}
{{- $_ := set $io "taskDuration" $root.Values.druid.taskDuration -}}
{{- toPrettyJson $spec -}}
{{- end -}}

{{/* Egress every pod of the release needs when egress is restricted, plus networkPolicy.egress.rules. */}}
{{- define "audience.egressCommon" -}}
# DNS.
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
# The silos, from the Api (gateway) and from each other.
- to:
    - podSelector:
        matchLabels:
          {{- include "audience.componentSelector" (dict "root" . "component" "silo") | nindent 10 }}
  ports:
    - port: {{ .Values.silo.siloPort }}
      protocol: TCP
    - port: {{ .Values.silo.gatewayPort }}
      protocol: TCP
{{- with .Values.networkPolicy.egress.rules }}
{{ toYaml . }}
{{- end }}
{{- end -}}
